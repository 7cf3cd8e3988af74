/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-args"

#include "config.h"

#include "twp-args.h"

#include <string.h>

struct _TwpArgs
{
  /* owned strings, same length; pair i is (keys[i], values[i]) */
  GPtrArray *keys;
  GPtrArray *values;
};

G_DEFINE_QUARK (twp-args-error-quark, twp_args_error)

TwpArgs *
twp_args_new (void)
{
  TwpArgs *args = g_new0 (TwpArgs, 1);

  args->keys = g_ptr_array_new_with_free_func (g_free);
  args->values = g_ptr_array_new_with_free_func (g_free);
  return args;
}

void
twp_args_free (TwpArgs *args)
{
  if (args == NULL)
    return;
  g_ptr_array_unref (args->keys);
  g_ptr_array_unref (args->values);
  g_free (args);
}

void
twp_args_add (TwpArgs    *args,
              const char *key,
              const char *value)
{
  g_return_if_fail (args != NULL);
  g_return_if_fail (key != NULL);
  g_return_if_fail (value != NULL);

  g_ptr_array_add (args->keys, g_strdup (key));
  g_ptr_array_add (args->values, g_strdup (value));
}

/* Takes ownership of both strings. */
static void
args_add_take (TwpArgs *args,
               char    *key,
               char    *value)
{
  g_ptr_array_add (args->keys, key);
  g_ptr_array_add (args->values, value);
}

guint
twp_args_get_length (TwpArgs *args)
{
  g_return_val_if_fail (args != NULL, 0);

  return args->keys->len;
}

const char *
twp_args_get_key (TwpArgs *args,
                  guint    i)
{
  g_return_val_if_fail (args != NULL, NULL);
  g_return_val_if_fail (i < args->keys->len, NULL);

  return g_ptr_array_index (args->keys, i);
}

const char *
twp_args_get_value (TwpArgs *args,
                    guint    i)
{
  g_return_val_if_fail (args != NULL, NULL);
  g_return_val_if_fail (i < args->values->len, NULL);

  return g_ptr_array_index (args->values, i);
}

const char *
twp_args_lookup (TwpArgs    *args,
                 const char *key)
{
  g_return_val_if_fail (args != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);

  for (guint i = 0; i < args->keys->len; i++)
    {
      if (strcmp (g_ptr_array_index (args->keys, i), key) == 0)
        return g_ptr_array_index (args->values, i);
    }
  return NULL;
}

guint
twp_args_count (TwpArgs    *args,
                const char *key)
{
  guint n = 0;

  g_return_val_if_fail (args != NULL, 0);
  g_return_val_if_fail (key != NULL, 0);

  for (guint i = 0; i < args->keys->len; i++)
    {
      if (strcmp (g_ptr_array_index (args->keys, i), key) == 0)
        n++;
    }
  return n;
}

gboolean
twp_args_equal (TwpArgs *a,
                TwpArgs *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);

  if (a->keys->len != b->keys->len)
    return FALSE;
  for (guint i = 0; i < a->keys->len; i++)
    {
      if (strcmp (g_ptr_array_index (a->keys, i), g_ptr_array_index (b->keys, i)) != 0 ||
          strcmp (g_ptr_array_index (a->values, i), g_ptr_array_index (b->values, i)) != 0)
        return FALSE;
    }
  return TRUE;
}

/* The SOCKS (C11) and SMETHOD (S8) grammars differ only in the item
 * separator: items split at unescaped @sep, the key ends at the first
 * unescaped '=' (later '=' belong to the value), "\X" is X. */
static TwpArgs *
parse_kv_list (const char  *str,
               gsize        len,
               char         sep,
               const char  *what,
               GError     **error)
{
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(GString) key = g_string_new (NULL);
  g_autoptr(GString) value = g_string_new (NULL);
  gboolean in_value = FALSE;   /* state: reading the key, or after its '=' */
  gsize i;

  if (len == 0)
    return g_steal_pointer (&args);

  for (i = 0; i <= len; i++)
    {
      char c;

      /* i == len acts as a final separator */
      if (i == len || str[i] == sep)
        {
          if (!in_value)
            {
              g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                           "%s item without '='", what);
              return NULL;
            }
          if (key->len == 0)
            {
              g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                           "%s item with empty key", what);
              return NULL;
            }
          args_add_take (args,
                         g_string_free (g_steal_pointer (&key), FALSE),
                         g_string_free (g_steal_pointer (&value), FALSE));
          key = g_string_new (NULL);
          value = g_string_new (NULL);
          in_value = FALSE;
          continue;
        }

      c = str[i];
      if (c == '\0')
        {
          g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                       "%s contain a NUL byte", what);
          return NULL;
        }
      if (c == '\\')
        {
          if (i + 1 >= len)
            {
              g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                           "%s end in a lone '\\'", what);
              return NULL;
            }
          c = str[++i];
          if (c == '\0')
            {
              g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                           "%s contain a NUL byte", what);
              return NULL;
            }
        }
      else if (c == '=' && !in_value)
        {
          in_value = TRUE;
          continue;
        }
      g_string_append_c (in_value ? value : key, c);
    }

  return g_steal_pointer (&args);
}

TwpArgs *
twp_args_parse_socks (const char  *str,
                      gsize        len,
                      GError     **error)
{
  g_return_val_if_fail (str != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return parse_kv_list (str, len, ';', "SOCKS args", error);
}

TwpArgs *
twp_args_parse_smethod (const char  *str,
                        GError     **error)
{
  g_return_val_if_fail (str != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return parse_kv_list (str, strlen (str), ',', "SMETHOD ARGS", error);
}

typedef enum {
  OPT_NAME,    /* up to the first unescaped ':' */
  OPT_KEY,     /* up to the first unescaped '=' */
  OPT_VALUE,   /* up to the next unescaped ';' */
} OptState;

GHashTable *
twp_args_parse_server_options (const char  *str,
                               GError     **error)
{
  g_autoptr(GHashTable) table = NULL;
  g_autoptr(GString) name = NULL;
  g_autoptr(GString) key = NULL;
  g_autoptr(GString) value = NULL;
  OptState state = OPT_NAME;
  gsize len;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                 (GDestroyNotify) twp_args_free);
  if (str == NULL || *str == '\0')
    return g_steal_pointer (&table);

  name = g_string_new (NULL);
  key = g_string_new (NULL);
  value = g_string_new (NULL);
  len = strlen (str);

  for (gsize i = 0; i <= len; i++)
    {
      GString *target;
      char c;

      /* the terminating NUL acts as a final ';' */
      if (str[i] == ';' || str[i] == '\0')
        {
          TwpArgs *args;

          if (state != OPT_VALUE)
            {
              g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                           "server option item without %s",
                           state == OPT_NAME ? "':'" : "'='");
              return NULL;
            }
          if (name->len == 0 || key->len == 0)
            {
              g_set_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                           "server option with empty %s",
                           name->len == 0 ? "transport name" : "key");
              return NULL;
            }
          args = g_hash_table_lookup (table, name->str);
          if (args == NULL)
            {
              args = twp_args_new ();
              g_hash_table_insert (table, g_strdup (name->str), args);
            }
          twp_args_add (args, key->str, value->str);
          g_string_truncate (name, 0);
          g_string_truncate (key, 0);
          g_string_truncate (value, 0);
          state = OPT_NAME;
          continue;
        }

      c = str[i];
      if (c == '\\')
        {
          if (str[i + 1] == '\0')
            {
              g_set_error_literal (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID,
                                   "server options end in a lone '\\'");
              return NULL;
            }
          c = str[++i];
        }
      else if (c == ':' && state == OPT_NAME)
        {
          state = OPT_KEY;
          continue;
        }
      else if (c == '=' && state == OPT_KEY)
        {
          state = OPT_VALUE;
          continue;
        }

      target = state == OPT_NAME ? name : state == OPT_KEY ? key : value;
      g_string_append_c (target, c);
    }

  return g_steal_pointer (&table);
}

static void
append_smethod_escaped (GString    *out,
                        const char *str)
{
  for (const char *p = str; *p != '\0'; p++)
    {
      if (*p == '=' || *p == ',' || *p == '\\')
        g_string_append_c (out, '\\');
      g_string_append_c (out, *p);
    }
}

char *
twp_args_format_smethod (TwpArgs *args)
{
  GString *out;

  g_return_val_if_fail (args != NULL, NULL);

  out = g_string_new (NULL);
  for (guint i = 0; i < args->keys->len; i++)
    {
      if (i > 0)
        g_string_append_c (out, ',');
      append_smethod_escaped (out, g_ptr_array_index (args->keys, i));
      g_string_append_c (out, '=');
      append_smethod_escaped (out, g_ptr_array_index (args->values, i));
    }
  return g_string_free (out, FALSE);
}
