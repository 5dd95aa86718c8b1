"""Thin page views: validate the request with a form, call one selector or service, render."""
