/**
 * The shop's shared look (shared/pages/shop.css): the gateway's queue page and checkout's sale
 * page both carry `<style data-shop></style>`, and each server fills it with this one file when it
 * serves the page, so the two pages cannot drift apart (one palette, one header).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CSS_FILE = fileURLToPath(new URL('./pages/shop.css', import.meta.url));
export const SHOP_STYLE_SLOT = '<style data-shop></style>';

let css: string | null = null;
/** The shared stylesheet's text (read once). */
export function shopCss(): string {
  if (css === null) {
    const text = readFileSync(CSS_FILE, 'utf8');
    // inlined in a <style> element: the text must not end it early
    if (/<\/style/i.test(text)) throw new Error(`${CSS_FILE} must not contain "</style"`);
    css = text;
  }
  return css;
}

/** The page with the shared stylesheet inlined in its slot; a page without the slot is a bug. */
export function withShopStyle(html: string): string {
  if (!html.includes(SHOP_STYLE_SLOT)) throw new Error(`page has no ${SHOP_STYLE_SLOT}`);
  return html.replace(SHOP_STYLE_SLOT, () => `<style data-shop>\n${shopCss()}</style>`);
}
