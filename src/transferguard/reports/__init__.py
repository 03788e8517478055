"""Reports built from results tables: Markdown, HTML and matplotlib figures."""
