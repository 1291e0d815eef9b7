# docs/: guides and man pages.
dist_doc_DATA += docs/config.md docs/events.md docs/plugin-guide.md docs/api.md docs/openapi.yaml docs/security.md
dist_doc_DATA += docs/notifiers.md docs/notifications.md docs/provider-imap.md docs/provider-pop3.md
dist_man_MANS += docs/mailhubd.8 docs/mailhub.yaml.5 docs/mailhubctl.1
