/** `*` matches any run of characters, `?` one; everything else is literal (Chroma names have no other specials). */
export function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

export const isGlob = (pattern: string) => /[*?]/.test(pattern);

export interface Resolution {
  /** Each matching collection once, in the order of the server's list. */
  collections: string[];
  /** Literal names that are not on the server (a glob matching nothing is not a problem). */
  missing: string[];
}

/**
 * vectorkeeper's own temporary collections (`…__vkrestore_…` staging, `…__vkold_…` swapped-out originals, and any
 * later `__vk` name) come and go mid-operation: a glob matching them would probe, back up or expire work in progress.
 */
export const isVectorkeeperTemporary = (name: string) => name.includes("__vk");

/** Resolves names and globs against the live list of collections; globs never match temporary collections. */
export function resolveCollections(patterns: readonly string[], existing: readonly string[]): Resolution {
  const regexps = patterns.map((pattern) => ({ re: globToRegExp(pattern), glob: isGlob(pattern) }));
  const present = new Set(existing);
  return {
    collections: existing.filter((name) =>
      regexps.some(({ re, glob }) => re.test(name) && !(glob && isVectorkeeperTemporary(name))),
    ),
    missing: patterns.filter((p) => !isGlob(p) && !present.has(p)),
  };
}
