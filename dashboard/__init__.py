"""Presenting: the Streamlit app, charts, reports and the command line."""
