"""Roofline planning (`gpumetrics roofline`, analytic) and measured profiles of the reference
worker or of a running engine (`gpumetrics profile`): sweep, analysis, verdict and reports."""
