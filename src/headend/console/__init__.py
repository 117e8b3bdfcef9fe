"""The console: headend's face in a browser (sign-in first; its pages come next)."""
