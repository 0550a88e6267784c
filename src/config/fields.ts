/** The kinds of setting a config file can hold, and how the schema declares them. */

export interface IntegerField {
  readonly kind: 'integer';
  readonly min: number;
  readonly max: number;
  readonly default?: number;
  readonly description: string;
}

export interface BooleanField {
  readonly kind: 'boolean';
  readonly default?: boolean;
  readonly description: string;
}

export interface StringField {
  readonly kind: 'string';
  readonly default?: string;
  readonly description: string;
  /** Must be given (list items' identifying keys, such as a listener's URL). */
  readonly required?: boolean;
  /** Why a value is unusable (what is expected), or undefined if it is fine. */
  readonly check?: (value: string) => string | undefined;
}

export interface EnumField<T extends string | number = string | number> {
  readonly kind: 'enum';
  readonly values: readonly T[];
  readonly default?: T;
  readonly description: string;
}

/** A list of listener URLs (a single URL is taken as a list of one). */
export interface UrlListField {
  readonly kind: 'urls';
  readonly default?: readonly string[];
  readonly description: string;
}

/** A list of names, each one of `values` (a single name is taken as a list of one). */
export interface NameListField {
  readonly kind: 'names';
  readonly values: readonly string[];
  readonly default?: readonly string[];
  readonly description: string;
}

export interface SectionField<T> {
  readonly kind: 'section';
  readonly description: string;
  readonly fields: SchemaFor<T>;
}

/** A list of sections of the same shape (e.g. `listeners`). */
export interface ListField<T> {
  readonly kind: 'list';
  readonly description: string;
  readonly item: SectionField<T>;
  readonly default: readonly T[];
}

export type LeafField = IntegerField | BooleanField | StringField | EnumField | UrlListField | NameListField;

/** Any section, as the validator walks it. */
export interface Section {
  readonly kind: 'section';
  readonly description: string;
  readonly fields: Fields;
}

/** Any list of sections, as the validator walks it. */
export interface List {
  readonly kind: 'list';
  readonly description: string;
  readonly item: Section;
  readonly default: readonly unknown[];
}

export type Field = LeafField | Section | List;

export interface Fields {
  readonly [key: string]: Field;
}

/** The field kind a value type calls for. */
type FieldFor<V> = [V] extends [boolean]
  ? BooleanField
  : [V] extends [readonly string[]]
    ? UrlListField | NameListField
    : [V] extends [readonly (infer I)[]]
      ? ListField<I>
      : [V] extends [string]
        ? string extends V
          ? StringField
          : EnumField<V>
        : [V] extends [number]
          ? number extends V
            ? IntegerField
            : EnumField<V>
          : [V] extends [object]
            ? SectionField<V>
            : never;

/** Required settings must declare their default; sections are defaulted field by field. */
type Defaulted<F, V> = F extends { kind: 'section' | 'list' } ? F : F & { readonly default: Readonly<V> };

/**
 * A schema for `T`: one field per key, typed after the key's value, so a setting added to
 * `BrokerOptions` or `MqttOptions` does not compile until it is declared here.
 */
export type SchemaFor<T> = {
  readonly [K in keyof T]-?: undefined extends T[K]
    ? FieldFor<Exclude<T[K], undefined>>
    : Defaulted<FieldFor<T[K]>, T[K]>;
};

// ---- one-line declarations -------------------------------------------------------------------

export function integer(min: number, max: number, fallback: number, description: string) {
  return { kind: 'integer', min, max, default: fallback, description } as const;
}

export function optionalInteger(min: number, max: number, description: string): IntegerField {
  return { kind: 'integer', min, max, description };
}

export function boolean(fallback: boolean, description: string) {
  return { kind: 'boolean', default: fallback, description } as const;
}

export function optionalBoolean(description: string): BooleanField {
  return { kind: 'boolean', description };
}

export function string(fallback: string, description: string) {
  return { kind: 'string', default: fallback, description } as const;
}

/** A string every list item must give, checked by `check`. */
export function requiredString(description: string, check: (value: string) => string | undefined) {
  return { kind: 'string', default: '', required: true, check, description } as const;
}

export function oneOf<const T extends string | number>(
  values: readonly T[],
  fallback: T,
  description: string,
) {
  return { kind: 'enum', values, default: fallback, description } as const;
}

export function urls(fallback: readonly string[], description: string) {
  return { kind: 'urls', default: fallback, description } as const;
}

export function names(values: readonly string[], description: string): NameListField {
  return { kind: 'names', values, description };
}

export function section<T>(description: string, fields: SchemaFor<T>): SectionField<T> {
  return { kind: 'section', description, fields };
}

export function list<T>(description: string, item: SectionField<T>): ListField<T> {
  return { kind: 'list', description, item, default: [] };
}

// ---- derived -------------------------------------------------------------------------------

/** What a value of `field` must be, as error messages and the reference say it. */
export function expectation(field: Field): string {
  switch (field.kind) {
    case 'integer':
      return `an integer from ${field.min} to ${field.max}`;
    case 'boolean':
      return 'true or false';
    case 'string':
      return 'a string';
    case 'enum':
      return `one of ${field.values.join(', ')}`;
    case 'urls':
      return `a list of listener URLs such as mqtt://0.0.0.0:1883`;
    case 'names':
      return `a list of: ${field.values.join(', ')}`;
    case 'section':
      return 'a mapping';
    case 'list':
      return 'a list of mappings';
  }
}

/** Calls `visit` for every field, depth first, with its dotted key (`listeners[].url` inside lists). */
export function walkFields(fields: Fields, visit: (key: string, field: Field) => void, prefix = ''): void {
  for (const [name, field] of Object.entries(fields)) {
    const key = prefix + name;
    visit(key, field);
    if (field.kind === 'section') walkFields(field.fields, visit, `${key}.`);
    if (field.kind === 'list') walkFields(field.item.fields, visit, `${key}[].`);
  }
}

/** A fresh object of every default in `fields` (settings without one are left out). */
export function defaultsOf(fields: Fields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(fields)) {
    if (field.kind === 'section') out[name] = defaultsOf(field.fields);
    else if (field.default !== undefined)
      out[name] = Array.isArray(field.default) ? [...field.default] : field.default;
  }
  return out;
}
