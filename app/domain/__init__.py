"""The service's pure core: the published DTOs, stored records, ids, positions, who sees what, changes and JSON Patches, and the events API's transitions. Imports no I/O."""
