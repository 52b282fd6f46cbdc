//! Fuzzes the DOCX extractor alone (see `vellum_extract_fuzz::parser_target`).
#![no_main]

vellum_extract_fuzz::parser_target!(Docx);
