"""The `whybox` command line."""
