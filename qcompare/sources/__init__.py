"""Where models, corpora, calibration text and the published figures come from."""
