"""sonogan: GAN-augmented classification of rare tumour classes in ultrasound.

Example:
    >>> import sonogan
    >>> sonogan.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
