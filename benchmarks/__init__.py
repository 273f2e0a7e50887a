"""Side-by-side runs of whybox against the libraries a user would script by hand."""
