"""`tlsmith probe`: a TLS server scanner built on the raw ClientHello prober."""
