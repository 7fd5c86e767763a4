"""I/O of the executor: step runners (subprocess, Dagger), engine detection, claims, publishing."""
