"""The Image API: a Glance v2 subset (images, data, members, tags, schemas)."""
