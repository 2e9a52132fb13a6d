"""seqrec: long- and short-term dependencies for sequential recommendation.

A reproduction and extension of J.M. van Hulst, "Long- and Short-term Dependencies for
Sequential Recommendation" (Radboud University): GRU, user-based GRU (Donkers et al., RecSys
2017) and DNC (Graves et al., Nature 2016; Csordas and Schmidhuber, ICLR 2019) on LastFM-1K.
"""

__version__ = "0.3.0"
