"""A minimal Django project serving django-oauth-toolkit, for the interoperability suite.

Run it as ``python -m tests.interop.dot_project.serve`` (see ``serve.py``).
"""
