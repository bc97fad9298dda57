"""The small library that the stages (``stages/``) share; importing it only defines things.

- ``artifacts``: outputs written all or none, with reproducible bytes;
- ``config``: params.yaml read as DVC reads it, every key checked, typed sections;
- ``cpu``: numpy's and OpenBLAS's floating-point code paths, pinned before numpy loads;
- ``download``: HTTP downloads, bounded in size and time, retried with backoff;
- ``errors``: the exceptions that the stage runner reports in one message;
- ``formats``: the files passed between stages, each one's writer and reader side by side;
- ``interpreter``: refuses a Python that is not the project's environment;
- ``mnist``: the four LeCun MNIST files, their mirrors, checksums and IDX format;
- ``model``: the estimator and all that the pipeline knows of it;
- ``openml``: MNIST from OpenML, the loader of scikit-learn's example;
- ``paths``: every file the pipeline reads or writes, named once;
- ``published``: the example's two published versions, their settings and numbers;
- ``runner``: runs a stage, one message and one exit code per cause;
- ``schema``: the building blocks of params.yaml's sections;
- ``split``: the training and test rows, by scikit-learn's ``train_test_split``.
"""
