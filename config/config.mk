# config/: the example configuration, installed as an example.
exampledir = $(docdir)/examples
dist_example_DATA = config/mailhub.yaml config/sample.mbox config/notifiers.yaml
