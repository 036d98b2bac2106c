"""Roofline planning (analytic) and, later, measured profiles of the reference worker."""
