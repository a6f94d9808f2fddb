"""automix settings on real plug-ins: `zam` (Debian's zam-plugins) and its EQ fit, `zam_eq`."""
