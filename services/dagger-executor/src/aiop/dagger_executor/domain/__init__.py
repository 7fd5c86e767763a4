"""Pure logic of a run: planning the DAG, output tails, secret scrubbing, names. No I/O."""
