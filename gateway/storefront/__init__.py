"""The storefront demo page (index.html, app.js, style.css), served by gateway/routes/storefront.py.

A package only so that the files ship as package data in a wheel (pyproject ``[tool.setuptools.package-data]``)."""
