"""Machine-readable descriptions of the API, generated from the msgspec models.

`catalog` holds what the Structs cannot say (descriptions, CLR namespaces, base
classes, operations); `metadata` turns models + catalog into ServiceStack's
MetadataTypes; `python`, `typescript` and `csharp` render those as
Add-ServiceStack-Reference DTOs; `pages` renders the HTML metadata pages;
`openapi` builds the OpenAPI 3.1 document. All pure; `routes` serves them.
"""
