"""Reports with no UI: charts, reason codes, their wording, and the HTML/PDF report."""
