"""Patient-facing text: several phrasings per message kind, translated with gettext.

PLACEHOLDER: signatures only; the implementation replaces this module.
"""
