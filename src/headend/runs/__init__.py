"""One request's run: planned, admitted, its session turn, its tool loop or model call, counted."""
