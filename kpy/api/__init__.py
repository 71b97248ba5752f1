"""kpy's API: the generated messages per group/version, and what makes them
usable: the scheme, the strict codec, quantities, int-or-string, label and
field selectors, defaulting, validation and the error hierarchy."""
