"""One module per library for the private APIs ovbench must use, each with the reason (issue 15)."""
