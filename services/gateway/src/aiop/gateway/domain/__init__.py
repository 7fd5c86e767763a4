"""Pure gateway logic: reading a submission, workflow ids, recently accepted ids."""
