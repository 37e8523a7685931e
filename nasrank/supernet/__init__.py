"""The weight-sharing side of nasrank: an SPOS supernet over the NB201 space trained with the landmark
term, the cell networks it and the standalone ground truth share, the image data it trains on, and
that ground truth (`truth`)."""
