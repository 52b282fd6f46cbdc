//! Fuzzes the plain text extractor alone (see `vellum_extract_fuzz::parser_target`).
#![no_main]

vellum_extract_fuzz::parser_target!(Text);
