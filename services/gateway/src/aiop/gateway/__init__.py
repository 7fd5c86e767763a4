"""AIOP service package."""
