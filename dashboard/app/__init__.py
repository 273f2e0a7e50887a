"""The Streamlit app: the only code in whybox that imports streamlit."""
