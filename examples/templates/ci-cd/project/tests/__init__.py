"""The tests of textkit."""
