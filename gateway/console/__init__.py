"""The staff console (index.html, console.js, console.css), served at ``/console`` by gateway/routes/console.py.

A package only so that the files ship as package data in a wheel (pyproject ``[tool.setuptools.package-data]``)."""
