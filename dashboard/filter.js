// The dashboard's short forms for tags and tag filters, turned into the protocol's JSON.
// No DOM here, so node can import it too.
//
//   tags:    "color=red, size=m"            -> {"color": "red", "size": "m"}
//   filter:  "color=red"                    -> {"eq": ["color", "red"]}
//            "size=s|m"                     -> {"in": ["size", ["s", "m"]]}
//            "kind!=test"                   -> {"not": {"eq": ["kind", "test"]}}
//            "color=red, size=s|m"          -> {"and": [{"eq": ...}, {"in": ...}]}
// Either also takes the JSON form as it is, when the text starts with `{`.

/** Parses `k=v, k2=v2` (or a JSON object of strings) into a tags object; `undefined` if empty. */
export function parseTags(text) {
  const source = String(text ?? "").trim();
  if (source === "") return undefined;
  if (source.startsWith("{")) {
    const tags = parseJson(source, "tags");
    if (tags === null || typeof tags !== "object" || Array.isArray(tags)) {
      throw new SyntaxError("tags must be an object of strings");
    }
    for (const [key, value] of Object.entries(tags)) {
      if (typeof value !== "string") throw new SyntaxError(`tag \`${key}\` must be a string`);
    }
    return tags;
  }
  const tags = {};
  for (const term of terms(source)) {
    const eq = term.indexOf("=");
    if (eq < 0) throw new SyntaxError(`\`${term}\` is not key=value`);
    const key = term.slice(0, eq).trim();
    if (key === "") throw new SyntaxError(`\`${term}\` has no key`);
    if (Object.hasOwn(tags, key)) throw new SyntaxError(`tag \`${key}\` given twice`);
    tags[key] = term.slice(eq + 1).trim();
  }
  return tags;
}

/** Parses a filter's short form (or JSON) into the protocol's filter; `undefined` if empty. */
export function parseFilter(text) {
  const source = String(text ?? "").trim();
  if (source === "") return undefined;
  if (source.startsWith("{")) {
    const filter = parseJson(source, "filter");
    if (filter === null || typeof filter !== "object" || Array.isArray(filter)) {
      throw new SyntaxError("a filter is an object such as {\"eq\": [\"key\", \"value\"]}");
    }
    return filter;
  }
  const parts = terms(source).map(parseTerm);
  return parts.length === 1 ? parts[0] : { and: parts };
}

function parseTerm(term) {
  const negated = /^([^=!]+)!=(.*)$/.exec(term);
  if (negated) return { not: match(negated[1], negated[2], term) };
  const plain = /^([^=!]+)=(.*)$/.exec(term);
  if (plain) return match(plain[1], plain[2], term);
  throw new SyntaxError(`\`${term}\` is not key=value, key=a|b or key!=value`);
}

function match(rawKey, rawValue, term) {
  const key = rawKey.trim();
  if (key === "") throw new SyntaxError(`\`${term}\` has no key`);
  const values = rawValue.split("|").map((value) => value.trim());
  return values.length > 1 ? { in: [key, values] } : { eq: [key, values[0]] };
}

function terms(source) {
  return source
    .split(",")
    .map((term) => term.trim())
    .filter((term) => term !== "");
}

function parseJson(source, what) {
  try {
    return JSON.parse(source);
  } catch (error) {
    throw new SyntaxError(`${what} is not JSON: ${error.message}`);
  }
}
