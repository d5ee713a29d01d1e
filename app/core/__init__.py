"""Cross-cutting pieces every feature uses: errors, request parsing, lists, responses."""
