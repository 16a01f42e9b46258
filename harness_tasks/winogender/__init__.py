"""gee_winogender: Winogender gender-occupation bias at the pronoun, as an lm-eval task."""
