"""The .smash standard library: ResNet, DenseNet and FractalNet block templates."""
