"""The three stages of the MNIST MLP-weights pipeline, one module each, and their entry point.

- ``fetch_and_scale``: the 70,000 MNIST digits, verified and scaled to [0, 1];
- ``train``: the estimator fitted on them, its metrics, loss and predictions;
- ``visualize``: the first layer's weights, the loss curve and the misclassified digits.

Each stage runs as ``python -m stages <stage>`` (``stages/__main__.py``), which sets up
the process before the stage's module, and numpy with it, is imported. What the stages
share (params, paths, formats, the estimator, the runner) is the ``pipeline`` package;
``tools.verify`` checks a reproduction. Importing any module here only defines things.
"""
