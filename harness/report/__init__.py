"""Reports of a verify run: the model, text pieces, console, JSON/Markdown, HTML, JUnit."""
