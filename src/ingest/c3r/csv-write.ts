// Writing CSV as C3R does (RFC 4180 with C3R's writer settings):
//   - NULL is written as --csvOutputNULLValue, or as nothing (`,,`) by default;
//   - the empty string is written `""` when NULL is written as nothing (or blank), so the two
//     stay apart, and as nothing otherwise;
//   - a value is quoted when it holds a comma, a quote, or any whitespace (space, tab, CR, LF,
//     form feed): C3R quotes on whitespace so that readers which trim unquoted values, as C3R's
//     does, read the value back unchanged. Such readers trim every character at or below U+0020,
//     so a value that starts or ends with any of them (a vertical tab, a control character) is
//     quoted too. Quotes inside are doubled.
//   - rows end with LF.
import { javaTrim } from './headers.js';

const NEEDS_QUOTES = /[",\t\n\r\f ]/;

function trimmedByReaders(text: string): boolean {
  return text.charCodeAt(0) <= 0x20 || text.charCodeAt(text.length - 1) <= 0x20;
}

function quote(text: string): string {
  return NEEDS_QUOTES.test(text) || trimmedByReaders(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export interface CsvWriteOptions {
  /** C3R's --csvOutputNULLValue. */
  readonly nullValue?: string;
}

/** A function that turns one row into one CSV line (with its LF). */
export function csvLineWriter(options: CsvWriteOptions = {}): (values: readonly (string | null)[]) => string {
  // As C3R's writer (univocity): a replacement already wrapped in quotes, such as `""`, is written as it is.
  const nullValue = options.nullValue;
  const wrapped = nullValue !== undefined && nullValue.length >= 2 && nullValue.startsWith('"') && nullValue.endsWith('"');
  const nullText = nullValue === undefined || nullValue === '' ? '' : wrapped ? nullValue : quote(nullValue);
  const emptyText = options.nullValue === undefined || javaTrim(options.nullValue) === '' ? '""' : '';
  return (values) => {
    let line = '';
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (i > 0) line += ',';
      if (value === null || value === undefined) line += nullText;
      else if (value === '') line += emptyText;
      else line += quote(value);
    }
    return `${line}\n`;
  };
}
