"""The paper's toy MLP experiment on MNIST: see toy_mnist/README.md."""
