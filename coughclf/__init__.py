"""coughclf: published audio architectures in Keras 3, made practical.

The package is split so that importing it is cheap: TensorFlow and Keras are
imported by the modules that need them (pipeline, layers, models, training),
never by the CLI until a command runs.
"""

__version__ = "0.1.0"
