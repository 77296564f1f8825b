"""Renderers: turn a Report into files, one renderer per ``--format`` (html, pdf, json, markdown, junit).

They never call the model. :mod:`tsreport.render.registry` lists them and writes the chosen ones;
a new format is one module with ``files(report, context)`` and one line there.
"""
