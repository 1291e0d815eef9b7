# sdk/: the public plugin ABI, installed with a pkg-config file.
mhinclude_HEADERS = sdk/mailhub/plugin.h sdk/mailhub/provider.h sdk/mailhub/notifier.h sdk/mailhub/store.h
pkgconfig_DATA = sdk/mailhub-plugin.pc
EXTRA_DIST += sdk/mailhub-plugin.pc.in sdk/examples/hello/hello.c sdk/examples/hello/Makefile \
	sdk/examples/hello/README.md
