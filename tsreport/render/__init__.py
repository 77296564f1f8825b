"""Renderers: turn a Report into HTML (Jinja2) and PDF (WeasyPrint). They never call the model."""
