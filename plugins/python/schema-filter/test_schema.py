"""Unit tests of the schema logic: `python -m unittest` (in this folder)"""

import json
import unittest

from schema import ConfigError, SchemaFilter

CONFIG = json.dumps({
    "schemas": {
        "orders.*": {"required": {"id": "integer", "item": "string"}, "optional": {"qty": "number"},
                     "extra": False},
        "chat": {"required": {"text": "string"}},
    }
})


class SchemaFilterTest(unittest.TestCase):
    def setUp(self):
        self.f = SchemaFilter(CONFIG)

    def test_conforming_data_passes(self):
        self.assertIsNone(self.f.check("orders.eu", '{"id": 1, "item": "tea", "qty": 2.5}'))
        self.assertIsNone(self.f.check("chat", '{"text": "hi", "extra": true}'))

    def test_unmatched_channel_passes_anything(self):
        self.assertIsNone(self.f.check("news", "[1, 2]"))

    def test_missing_required_field(self):
        self.assertEqual(self.f.check("orders.eu", '{"id": 1}'), "data.item is required")

    def test_wrong_type(self):
        self.assertEqual(self.f.check("orders.eu", '{"id": "1", "item": "tea"}'),
                         "data.id must be integer, not string")
        self.assertEqual(self.f.check("orders.eu", '{"id": true, "item": "tea"}'),
                         "data.id must be integer, not boolean")

    def test_integer_counts_as_number(self):
        self.assertIsNone(self.f.check("orders.eu", '{"id": 1, "item": "tea", "qty": 3}'))

    def test_extra_field_refused_when_extra_false(self):
        self.assertEqual(self.f.check("orders.eu", '{"id": 1, "item": "tea", "x": 0}'), "data.x is not allowed")

    def test_data_must_be_an_object(self):
        self.assertEqual(self.f.check("chat", '"hi"'), "data must be an object, not string")

    def test_bad_config_names_the_key(self):
        for config, message in [
            ("[]", "config must be a table"),
            ('{"schema": {}}', "unknown config key `schema` (expected `schemas`)"),
            ('{"schemas": {"a": {"required": {"x": "text"}}}}', "schemas.a.required.x: unknown type 'text'"),
            ('{"schemas": {"a": {"extra": 1}}}', "schemas.a.extra: must be true or false"),
        ]:
            with self.subTest(config=config):
                with self.assertRaises(ConfigError) as caught:
                    SchemaFilter(config)
                self.assertIn(message, str(caught.exception))


if __name__ == "__main__":
    unittest.main()
