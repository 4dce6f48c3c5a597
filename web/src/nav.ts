// Hash routes: `go('alerts', id)` moves to #/alerts/ID (each part URI-encoded).
export function go(...parts: string[]) {
  location.hash = href(...parts);
}
export function href(...parts: string[]): string {
  return '#/' + parts.map(encodeURIComponent).join('/');
}
