"""Unit tests of logic.py: `python3 -m unittest` in this folder."""

import unittest

from logic import ConfigError, drop_reason, parse_config


class LogicTest(unittest.TestCase):
    def test_passes_small_and_drops_large_data(self):
        self.assertIsNone(drop_reason(5, '"abc"'))
        self.assertEqual(drop_reason(5, '"abcd"'), "data is larger than 5 bytes")

    def test_refuses_a_config_without_max_bytes(self):
        for text in ("{}", '{"max_bytes": 0}', '{"max_bytes": true}'):
            with self.assertRaises(ConfigError):
                parse_config(text)


if __name__ == "__main__":
    unittest.main()
