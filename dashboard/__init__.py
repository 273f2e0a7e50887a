"""Presenting: the Streamlit app, the command line, reports, run records and jobs."""
