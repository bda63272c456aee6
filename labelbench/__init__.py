"""labelbench: given this many labels of this kind, which learning method should I use?"""

__version__ = "0.1.0"
