"""videogate: a video conferencing gate that admits peers only after face verification."""
